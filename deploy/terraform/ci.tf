# GitHub Actions OIDC: no long-lived AWS keys in GitHub. Two roles, each trusted only by this
# repository's workflows on main (pushes to main, or jobs in an environment whose deployment
# branches are limited to main in the repository settings):
#   ci-deploy    push images to the ECR repository; describe the cluster for kubectl, whose
#                access entry may edit the pitchside namespace only (eks.tf)
#   ci-training  read the training data sets

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.github_oidc_provider_arn == "" ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  github_oidc_provider_arn = var.github_oidc_provider_arn != "" ? var.github_oidc_provider_arn : aws_iam_openid_connect_provider.github[0].arn
  github_oidc_subjects = {
    # "ref" is the sub claim of a job without an environment (the image build on a push to
    # main); "environment" that of a job in one (GitHub's default claim format).
    deploy = [
      "repo:${var.github_repository}:ref:refs/heads/main",
      "repo:${var.github_repository}:environment:${var.github_deploy_environment}",
    ]
    training = [
      "repo:${var.github_repository}:environment:${var.github_training_environment}",
    ]
  }
}

data "aws_iam_policy_document" "github_trust" {
  for_each = local.github_oidc_subjects

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = each.value
    }
  }
}

resource "aws_iam_role" "ci_deploy" {
  name                 = "${local.name}-ci-deploy"
  description          = "GitHub Actions (${var.github_repository}, main): push images to ECR, deploy to EKS"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["deploy"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "ci_deploy" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }

  statement {
    sid = "EcrPushPitchside"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [aws_ecr_repository.pitchside.arn]
  }

  statement {
    sid       = "EcrKmsForLayers"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ecr.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "EksKubeconfig"
    actions   = ["eks:DescribeCluster"]
    resources = [aws_eks_cluster.main.arn]
  }
}

resource "aws_iam_role_policy" "ci_deploy" {
  name   = "ecr-push-eks-deploy"
  role   = aws_iam_role.ci_deploy.id
  policy = data.aws_iam_policy_document.ci_deploy.json
}

resource "aws_iam_role" "ci_training" {
  name                 = "${local.name}-ci-training"
  description          = "GitHub Actions (${var.github_repository}, training environment): read data sets"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["training"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "ci_training" {
  statement {
    sid       = "ListDatasets"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.main["datasets"].arn]
  }

  statement {
    sid       = "ReadDatasets"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.main["datasets"].arn}/*"]
  }

  statement {
    sid       = "DecryptDatasets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "ci_training" {
  name   = "read-datasets"
  role   = aws_iam_role.ci_training.id
  policy = data.aws_iam_policy_document.ci_training.json
}

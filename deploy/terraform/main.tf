# Shared names, the account, and the customer-managed KMS key that encrypts everything at
# rest: S3, EBS node volumes, EKS secrets, ElastiCache, RDS, CloudWatch log groups, ECR.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# Fails the plan when a zone in var.availability_zones is not available in the region.
data "aws_availability_zones" "selected" {
  state = "available"
  filter {
    name   = "zone-name"
    values = var.availability_zones
  }
}

locals {
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
  azs        = var.availability_zones
  az_count   = length(var.availability_zones)
}

resource "aws_kms_key" "main" {
  description             = "${local.name}: encryption at rest of S3, EBS, EKS secrets, ElastiCache, RDS, logs, ECR"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is the key itself, and the account-root statement is AWS's default key policy: it delegates the key's administration to IAM policies in this account, without which the key becomes unmanageable.
  #checkov:skip=CKV_AWS_356:In a key policy, Resource "*" means this key only; a key policy cannot name its own ARN before the key exists.
  #checkov:skip=CKV_AWS_109:The account-root statement is AWS's default key policy (delegation to IAM); without it nobody could manage or delete the key.
  # The account administers the key through IAM; services below are granted use only.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy, "*" is this key
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    # EC2 Auto Scaling launches the node groups' encrypted volumes with this key.
    sid       = "AutoScalingUsesKeyForVolumes"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]
    }
  }
}

# EKS: the control plane (private endpoint by default, secrets encrypted with the KMS key,
# every control-plane log), a CPU node group and a tainted GPU node group on the NVIDIA AMI,
# access entries instead of the aws-auth ConfigMap, and EKS Pod Identity for pods that use AWS.

resource "aws_cloudwatch_log_group" "eks" {
  # EKS writes to this fixed name; created here so that it is encrypted and expires.
  name              = "/aws/eks/${local.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_eks_cluster" "main" {
  name     = local.name
  version  = var.eks_version
  role_arn = aws_iam_role.eks_cluster.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = var.eks_public_endpoint
    public_access_cidrs     = var.eks_public_endpoint ? var.eks_public_access_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.main.arn
    }
  }

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = false
  }

  depends_on = [
    aws_cloudwatch_log_group.eks,
    aws_iam_role_policy_attachment.eks_cluster,
  ]
}

resource "aws_iam_role" "eks_cluster" {
  name               = "${local.name}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.eks_cluster_trust.json
}

data "aws_iam_policy_document" "eks_cluster_trust" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "eks_cluster" {
  role       = aws_iam_role.eks_cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_eks_addon" "main" {
  for_each = toset(["vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent"])

  cluster_name                = aws_eks_cluster.main.name
  addon_name                  = each.key
  resolve_conflicts_on_update = "OVERWRITE"

  # coredns needs nodes to schedule on
  depends_on = [aws_eks_node_group.cpu]
}

# Cluster admins: the people and break-glass roles in eks_admin_principal_arns.
resource "aws_eks_access_entry" "admin" {
  for_each      = toset(var.eks_admin_principal_arns)
  cluster_name  = aws_eks_cluster.main.name
  principal_arn = each.key
}

resource "aws_eks_access_policy_association" "admin" {
  for_each      = toset(var.eks_admin_principal_arns)
  cluster_name  = aws_eks_cluster.main.name
  principal_arn = each.key
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.admin]
}

# CI deploys (kubectl apply -k) into the pitchside namespace only.
resource "aws_eks_access_entry" "ci_deploy" {
  cluster_name  = aws_eks_cluster.main.name
  principal_arn = aws_iam_role.ci_deploy.arn
}

resource "aws_eks_access_policy_association" "ci_deploy" {
  cluster_name  = aws_eks_cluster.main.name
  principal_arn = aws_iam_role.ci_deploy.arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"

  access_scope {
    type       = "namespace"
    namespaces = [var.k8s_namespace]
  }

  depends_on = [aws_eks_access_entry.ci_deploy]
}

# Nodes

resource "aws_iam_role" "eks_node" {
  name               = "${local.name}-eks-node"
  assume_role_policy = data.aws_iam_policy_document.eks_node_trust.json
}

data "aws_iam_policy_document" "eks_node_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "eks_node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
  ])
  role       = aws_iam_role.eks_node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.key}"
}

# One launch template per node group: an encrypted gp3 root volume and IMDSv2 only, with a
# hop limit of 1 so that pods cannot reach the node's credentials (they use Pod Identity).
resource "aws_launch_template" "node" {
  for_each = toset(["cpu", "gpu"])

  name_prefix            = "${local.name}-${each.key}-"
  update_default_version = true

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.node_disk_size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.main.arn
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${local.name}-${each.key}" }
  }
}

resource "aws_eks_node_group" "cpu" {
  cluster_name    = aws_eks_cluster.main.name
  node_group_name = "cpu"
  node_role_arn   = aws_iam_role.eks_node.arn
  subnet_ids      = aws_subnet.private[*].id
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.cpu_instance_types

  launch_template {
    id      = aws_launch_template.node["cpu"].id
    version = aws_launch_template.node["cpu"].latest_version
  }

  scaling_config {
    min_size     = var.cpu_node_scaling.min
    desired_size = var.cpu_node_scaling.desired
    max_size     = var.cpu_node_scaling.max
  }

  update_config {
    max_unavailable = 1
  }

  labels = { "pitchside.io/pool" = "cpu" }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size] # owned by the cluster autoscaler
  }

  depends_on = [aws_iam_role_policy_attachment.eks_node]
}

# GPU workers and training: the NVIDIA AL2023 AMI (driver and container toolkit inside),
# tainted so that only pods tolerating nvidia.com/gpu land here.
resource "aws_eks_node_group" "gpu" {
  cluster_name    = aws_eks_cluster.main.name
  node_group_name = "gpu"
  node_role_arn   = aws_iam_role.eks_node.arn
  subnet_ids      = aws_subnet.private[*].id
  ami_type        = "AL2023_x86_64_NVIDIA"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.gpu_instance_types

  launch_template {
    id      = aws_launch_template.node["gpu"].id
    version = aws_launch_template.node["gpu"].latest_version
  }

  scaling_config {
    min_size     = var.gpu_node_scaling.min
    desired_size = var.gpu_node_scaling.desired
    max_size     = var.gpu_node_scaling.max
  }

  update_config {
    max_unavailable = 1
  }

  labels = {
    "pitchside.io/pool"      = "gpu"
    "nvidia.com/gpu.present" = "true"
  }

  taint {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.eks_node]
}

# EKS Pod Identity: MLflow writes its artifacts, the gateway and ingest read and write uploads.

data "aws_iam_policy_document" "pod_identity_trust" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_eks_cluster.main.arn]
    }
  }
}

locals {
  pod_roles = {
    mlflow    = { service_account = var.service_accounts.mlflow, buckets = ["mlflow"] }
    pitchside = { service_account = var.service_accounts.pitchside, buckets = ["uploads"] }
  }
}

resource "aws_iam_role" "pod" {
  for_each           = local.pod_roles
  name               = "${local.name}-pod-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_trust.json
}

data "aws_iam_policy_document" "pod" {
  for_each = local.pod_roles

  statement {
    sid       = "ListOwnBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [for b in each.value.buckets : aws_s3_bucket.main[b].arn]
  }

  statement {
    sid       = "ReadWriteObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for b in each.value.buckets : "${aws_s3_bucket.main[b].arn}/*"]
  }

  statement {
    sid       = "UseBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_role_policy" "pod" {
  for_each = local.pod_roles
  name     = "s3-${join("-", each.value.buckets)}"
  role     = aws_iam_role.pod[each.key].id
  policy   = data.aws_iam_policy_document.pod[each.key].json
}

resource "aws_eks_pod_identity_association" "pod" {
  for_each        = local.pod_roles
  cluster_name    = aws_eks_cluster.main.name
  namespace       = var.k8s_namespace
  service_account = each.value.service_account
  role_arn        = aws_iam_role.pod[each.key].arn
}

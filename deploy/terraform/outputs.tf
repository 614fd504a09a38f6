# What the workflows, the Kubernetes manifests and the operators need. None is a secret:
# the Redis token is an input, and the PostgreSQL password stays in Secrets Manager.

output "aws_region" {
  description = "Region everything was created in (the AWS_REGION repository variable of the workflows)."
  value       = local.region
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.main.id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (nodes, Redis, PostgreSQL, internal load balancers), one per AZ."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "IDs of the public subnets (NAT gateways and internet-facing load balancers only), one per AZ."
  value       = aws_subnet.public[*].id
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts S3, EBS, EKS secrets, ElastiCache, RDS, ECR and the log groups."
  value       = aws_kms_key.main.arn
}

output "ecr_repository_url" {
  description = "URL of the ECR repository for the pitchside images (the ECR_REPOSITORY repository variable); tags <sha>, <sha>-train, <sha>-gpu."
  value       = aws_ecr_repository.pitchside.repository_url
}

output "eks_cluster_name" {
  description = "Name of the EKS cluster (the EKS_CLUSTER repository variable; aws eks update-kubeconfig --name ...)."
  value       = aws_eks_cluster.main.name
}

output "eks_cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API (private unless eks_public_endpoint)."
  value       = aws_eks_cluster.main.endpoint
}

output "eks_cluster_certificate_authority" {
  description = "Base64 PEM of the cluster's certificate authority, for kubeconfig."
  value       = aws_eks_cluster.main.certificate_authority[0].data
}

output "eks_cluster_security_group_id" {
  description = "The cluster security group EKS gives the control plane and the managed nodes; Redis and PostgreSQL admit only it."
  value       = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
}

output "gpu_node_taint" {
  description = "Taint of the GPU node group: GPU workers and training pods need a toleration for it and a nvidia.com/gpu resource limit."
  value       = "nvidia.com/gpu=true:NoSchedule"
}

output "redis_primary_endpoint" {
  description = "Primary endpoint of the Redis bus: REDIS_URL=rediss://:<redis_auth_token>@<this>:6379 (TLS required)."
  value       = aws_elasticache_replication_group.redis.primary_endpoint_address
}

output "rds_endpoint" {
  description = "host:port of the PostgreSQL results store: DATABASE_URL=postgresql+psycopg://pitchside:<password>@<this>/pitchside?sslmode=verify-full."
  value       = aws_db_instance.results.endpoint
}

output "rds_master_user_secret_arn" {
  description = "ARN of the Secrets Manager secret in which RDS keeps the generated master password (rotated by RDS)."
  value       = aws_db_instance.results.master_user_secret[0].secret_arn
}

output "s3_buckets" {
  description = "Bucket names by purpose: mlflow (MLflow --artifacts-destination s3://<this>/), uploads, datasets (DATASETS_BUCKET of the training workflow)."
  value       = { for k, b in aws_s3_bucket.main : k => b.bucket }
}

output "pod_role_arns" {
  description = "IAM roles bound by EKS Pod Identity to the service accounts in var.service_accounts (namespace var.k8s_namespace)."
  value       = { for k, r in aws_iam_role.pod : k => r.arn }
}

output "ci_deploy_role_arn" {
  description = "Role the build and deploy workflows assume through GitHub OIDC (the AWS_DEPLOY_ROLE_ARN repository variable)."
  value       = aws_iam_role.ci_deploy.arn
}

output "ci_training_role_arn" {
  description = "Role the continuous-training workflow assumes through GitHub OIDC to read data sets (the AWS_TRAINING_ROLE_ARN repository variable)."
  value       = aws_iam_role.ci_training.arn
}

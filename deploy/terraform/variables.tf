# Inputs. Every variable has a type and a description; every one whose values are
# constrained has a validation block, so a bad value fails at plan time with a clear message.

variable "project" {
  type        = string
  description = "Name prefix of every resource (lowercase letters, digits and hyphens)."
  default     = "pitchside"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.project))
    error_message = "project must be 2-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "environment" {
  type        = string
  description = "Deployment environment: dev, staging or prod. Tags every resource and names them."
  default     = "prod"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "aws_region" {
  type        = string
  description = "AWS region to deploy into, e.g. eu-west-1."
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like eu-west-1."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR of the VPC, /16 to /20; each AZ gets a private and a public subnet carved from it."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR block between /16 and /20."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones (names, in aws_region) for subnets, nodes, Redis and PostgreSQL: 2 or 3, listed explicitly so the set never grows by itself when AWS adds a zone."
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list 2 or 3 distinct zones (RDS and ElastiCache Multi-AZ need at least 2)."
  }

  validation {
    condition     = alltrue([for z in var.availability_zones : startswith(z, var.aws_region) && can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$", z))])
    error_message = "availability_zones must be zone names of aws_region, such as eu-west-1a."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for all AZs (cheaper; egress stops if its AZ fails) instead of one per AZ."
  default     = false
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the VPC flow logs and EKS control-plane logs in CloudWatch, in days."
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention of at least a year: 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

# EKS

variable "eks_version" {
  type        = string
  description = "Kubernetes version of the EKS control plane, e.g. 1.33."
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.eks_version))
    error_message = "eks_version must be a Kubernetes minor version such as 1.33."
  }
}

variable "eks_public_endpoint" {
  type        = bool
  description = "Also expose the EKS API endpoint publicly (restricted to eks_public_access_cidrs). Off: private endpoint only, reachable from the VPC (a VPN, a bastion or a self-hosted runner)."
  default     = false
}

variable "eks_public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the public EKS endpoint when eks_public_endpoint is true. Never 0.0.0.0/0."
  default     = []

  validation {
    condition     = alltrue([for c in var.eks_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "eks_public_access_cidrs must be IPv4 CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "eks_admin_principal_arns" {
  type        = list(string)
  description = "IAM role or user ARNs given cluster-admin through EKS access entries (people, break-glass roles)."
  default     = []

  validation {
    condition     = alltrue([for a in var.eks_admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "eks_admin_principal_arns must be IAM role or user ARNs."
  }
}

variable "k8s_namespace" {
  type        = string
  description = "Kubernetes namespace of the pitchside services (deploy/kubernetes); the CI role may edit only this namespace."
  default     = "pitchside"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.k8s_namespace))
    error_message = "k8s_namespace must be a DNS label (lowercase letters, digits, hyphens; at most 63)."
  }
}

variable "service_accounts" {
  type = object({
    mlflow    = string
    pitchside = string
  })
  description = "Kubernetes service accounts given AWS access through EKS Pod Identity: mlflow (read-write on the MLflow artifacts bucket), pitchside (the gateway and ingest: read-write on the uploads bucket)."
  default = {
    mlflow    = "mlflow"
    pitchside = "pitchside"
  }

  validation {
    condition     = alltrue([for n in values(var.service_accounts) : can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", n))])
    error_message = "service_accounts values must be Kubernetes names (lowercase letters, digits, '-' and '.')."
  }
}

variable "cpu_instance_types" {
  type        = list(string)
  description = "EC2 instance types of the CPU node group (gateway, ingest, tracker, CPU workers, MLflow)."
  default     = ["c6i.2xlarge"]

  validation {
    condition     = length(var.cpu_instance_types) > 0 && alltrue([for t in var.cpu_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "cpu_instance_types must be a non-empty list of EC2 instance types such as c6i.2xlarge."
  }
}

variable "cpu_node_scaling" {
  type = object({
    min     = number
    desired = number
    max     = number
  })
  description = "Size of the CPU node group: min <= desired <= max, min at least 1."
  default = {
    min     = 2
    desired = 3
    max     = 6
  }

  validation {
    condition     = var.cpu_node_scaling.min >= 1 && var.cpu_node_scaling.min <= var.cpu_node_scaling.desired && var.cpu_node_scaling.desired <= var.cpu_node_scaling.max
    error_message = "cpu_node_scaling needs 1 <= min <= desired <= max."
  }
}

variable "gpu_instance_types" {
  type        = list(string)
  description = "EC2 GPU instance types of the GPU node group (NVIDIA AMI; GPU workers and training), e.g. g5.xlarge, g6.xlarge."
  default     = ["g5.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^(g[4-9][a-z]*|p[3-9][a-z]*)\\.[a-z0-9]+$", t))])
    error_message = "gpu_instance_types must be NVIDIA GPU instance types (g4dn, g5, g6, p4d, p5 ...)."
  }
}

variable "gpu_node_scaling" {
  type = object({
    min     = number
    desired = number
    max     = number
  })
  description = "Size of the GPU node group: min <= desired <= max; min 0 lets it scale to zero between jobs (with a cluster autoscaler)."
  default = {
    min     = 0
    desired = 1
    max     = 4
  }

  validation {
    condition     = var.gpu_node_scaling.min >= 0 && var.gpu_node_scaling.min <= var.gpu_node_scaling.desired && var.gpu_node_scaling.desired <= var.gpu_node_scaling.max && var.gpu_node_scaling.max >= 1
    error_message = "gpu_node_scaling needs 0 <= min <= desired <= max and max >= 1."
  }
}

variable "node_disk_size_gb" {
  type        = number
  description = "Encrypted gp3 root volume of every node, in GiB (images with CUDA libraries are large)."
  default     = 100

  validation {
    condition     = var.node_disk_size_gb >= 30 && var.node_disk_size_gb <= 2000
    error_message = "node_disk_size_gb must be between 30 and 2000."
  }
}

# ElastiCache (the Redis Streams bus)

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type of the Redis bus, e.g. cache.r7g.large."
  default     = "cache.r7g.large"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.redis_node_type))
    error_message = "redis_node_type must be an ElastiCache node type such as cache.r7g.large."
  }
}

variable "redis_engine_version" {
  type        = string
  description = "Redis OSS engine version of ElastiCache (7.x; the bus needs Streams and XAUTOCLAIM, Redis >= 6.2)."
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.redis_engine_version))
    error_message = "redis_engine_version must be a Redis 7 version such as 7.1."
  }
}

variable "redis_auth_token" {
  type        = string
  description = "Redis AUTH token (the password in REDIS_URL=rediss://:TOKEN@host:6379): 16-128 printable characters, none of @ \" / or space. Give it through TF_VAR_redis_auth_token or a secret store, never in a file."
  sensitive   = true

  validation {
    condition     = length(var.redis_auth_token) >= 16 && length(var.redis_auth_token) <= 128 && can(regex("^[!#-.0-?A-~]+$", var.redis_auth_token))
    error_message = "redis_auth_token must be 16-128 printable ASCII characters without @, \", / or spaces."
  }
}

# RDS PostgreSQL (the results store)

variable "rds_instance_class" {
  type        = string
  description = "RDS instance class of the results store, e.g. db.m7g.large."
  default     = "db.m7g.large"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.rds_instance_class))
    error_message = "rds_instance_class must be an RDS instance class such as db.m7g.large."
  }
}

variable "rds_engine_version" {
  type        = string
  description = "PostgreSQL major version of the results store (15 or newer)."
  default     = "16"

  validation {
    condition     = contains(["15", "16", "17"], var.rds_engine_version)
    error_message = "rds_engine_version must be 15, 16 or 17."
  }
}

variable "rds_allocated_storage_gb" {
  type        = number
  description = "Initial storage of the results store in GiB; it grows by itself up to rds_max_allocated_storage_gb."
  default     = 50

  validation {
    condition     = var.rds_allocated_storage_gb >= 20 && var.rds_allocated_storage_gb <= 65536
    error_message = "rds_allocated_storage_gb must be between 20 and 65536."
  }
}

variable "rds_max_allocated_storage_gb" {
  type        = number
  description = "Upper bound of storage autoscaling of the results store, in GiB (at least rds_allocated_storage_gb)."
  default     = 500

  validation {
    condition     = var.rds_max_allocated_storage_gb >= 20 && var.rds_max_allocated_storage_gb <= 65536
    error_message = "rds_max_allocated_storage_gb must be between 20 and 65536."
  }
}

variable "rds_multi_az" {
  type        = bool
  description = "Run the results store Multi-AZ (a synchronous standby in another AZ)."
  default     = true
}

variable "rds_backup_retention_days" {
  type        = number
  description = "Days of automated backups (point-in-time recovery) of the results store, 7-35."
  default     = 14

  validation {
    condition     = var.rds_backup_retention_days >= 7 && var.rds_backup_retention_days <= 35
    error_message = "rds_backup_retention_days must be between 7 and 35."
  }
}

variable "rds_deletion_protection" {
  type        = bool
  description = "Refuse to delete the results store (turn off deliberately, apply, then destroy)."
  default     = true
}

# S3

variable "s3_noncurrent_version_days" {
  type        = number
  description = "Days a replaced or deleted object version is kept in the buckets before it expires."
  default     = 90

  validation {
    condition     = var.s3_noncurrent_version_days >= 1 && var.s3_noncurrent_version_days <= 3650
    error_message = "s3_noncurrent_version_days must be between 1 and 3650."
  }
}

# CI (GitHub Actions OIDC)

variable "github_repository" {
  type        = string
  description = "The GitHub repository (owner/name) whose workflows may assume the CI roles."

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "github_deploy_environment" {
  type        = string
  description = "GitHub environment of the deploy job (restrict its deployment branches to main in the repository settings)."
  default     = "production"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,255}$", var.github_deploy_environment))
    error_message = "github_deploy_environment must be a GitHub environment name (letters, digits, _ . -)."
  }
}

variable "github_training_environment" {
  type        = string
  description = "GitHub environment of the continuous-training job (restrict its deployment branches to main)."
  default     = "training"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,255}$", var.github_training_environment))
    error_message = "github_training_environment must be a GitHub environment name (letters, digits, _ . -)."
  }
}

variable "github_oidc_provider_arn" {
  type        = string
  description = "ARN of an existing token.actions.githubusercontent.com OIDC provider in the account (there can be only one); empty: create it."
  default     = ""

  validation {
    condition     = var.github_oidc_provider_arn == "" || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.github_oidc_provider_arn))
    error_message = "github_oidc_provider_arn must be empty or the ARN of the token.actions.githubusercontent.com OIDC provider."
  }
}

# Terraform and provider versions, and the remote state.
#
# State lives in the S3 bucket that bootstrap/ creates, locked with S3's native lock file
# (use_lockfile, Terraform >= 1.11): the DynamoDB lock table is deprecated since 1.11 and
# needs a second resource and more IAM for the same guarantee. The bucket, the region and the
# KMS key differ per account, so they are given at init time:
#
#   terraform init -backend-config=backend.s3.tfbackend   # from backend.s3.tfbackend.example
terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  backend "s3" {
    key          = "pitchside/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      project     = var.project
      environment = var.environment
      managed-by  = "terraform"
      repository  = var.github_repository
    }
  }
}

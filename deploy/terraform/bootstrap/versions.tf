# Bootstrap: the S3 bucket (and its KMS key) that holds the main configuration's state.
# Run once per account with local state, then keep its terraform.tfstate somewhere safe (or
# migrate it into the bucket it created: add a backend "s3" block and `terraform init
# -migrate-state`). Locking is S3's native lock file (use_lockfile), so no DynamoDB table.
terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      project    = var.project
      managed-by = "terraform"
      purpose    = "terraform-state"
    }
  }
}

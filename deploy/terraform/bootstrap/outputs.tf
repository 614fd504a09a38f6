output "state_bucket" {
  description = "Name of the state bucket: `bucket` in ../backend.s3.tfbackend."
  value       = aws_s3_bucket.state.bucket
}

output "state_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the state: `kms_key_id` in ../backend.s3.tfbackend."
  value       = aws_kms_key.state.arn
}

output "region" {
  description = "Region of the state bucket: `region` in ../backend.s3.tfbackend."
  value       = var.aws_region
}

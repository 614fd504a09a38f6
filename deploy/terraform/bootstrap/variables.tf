variable "project" {
  type        = string
  description = "Name prefix of the state bucket and key (lowercase letters, digits and hyphens)."
  default     = "pitchside"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.project))
    error_message = "project must be 2-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "aws_region" {
  type        = string
  description = "Region of the state bucket (the backend's region)."
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like eu-west-1."
  }
}

variable "state_version_retention_days" {
  type        = number
  description = "Days an old version of the state file is kept (recovery from a bad apply)."
  default     = 365

  validation {
    condition     = var.state_version_retention_days >= 30 && var.state_version_retention_days <= 3650
    error_message = "state_version_retention_days must be between 30 and 3650."
  }
}

# One repository for the pitchside image. Tags are immutable: CI pushes <git sha> (serving,
# CPU), <git sha>-train and <git sha>-gpu, and the cluster runs exactly the commit it names.

resource "aws_ecr_repository" "pitchside" {
  name                 = var.project
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.main.arn
  }
}

resource "aws_ecr_lifecycle_policy" "pitchside" {
  repository = aws_ecr_repository.pitchside.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "keep the 200 newest images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = 200
      }
      action = { type = "expire" }
    }]
  })
}

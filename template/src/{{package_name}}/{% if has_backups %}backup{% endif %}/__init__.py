"""Backups of the service's database: create, list, verify, restore and prune, in a directory
or an S3 bucket, optionally encrypted."""

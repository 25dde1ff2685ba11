"""Value mapping: links AI cost to business outcomes per use case."""

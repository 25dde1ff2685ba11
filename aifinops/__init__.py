"""aifinops: the command line, the local stack runner, the demo and its report."""

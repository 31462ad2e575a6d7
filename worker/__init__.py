"""The Temporal worker process: runs the stored-workflow workflow and the step activities."""

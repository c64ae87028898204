"""RQ jobs and what they share: the ingest pipeline, notifications and the cron jobs."""

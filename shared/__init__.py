"""Event contracts, topic names, settings and the Kafka and database plumbing shared by every service."""

"""ITSM connectors: ServiceNow incidents, Jira issues and a generic signed webhook, fed from the ticket outbox."""

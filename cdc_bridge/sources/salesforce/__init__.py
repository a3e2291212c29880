"""Salesforce as a source: Change Data Capture and platform events over the Pub/Sub API."""

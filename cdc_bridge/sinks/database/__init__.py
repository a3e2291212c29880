"""The SQL database sink: Kafka change events into PostgreSQL, MySQL/MariaDB or SQLite tables."""

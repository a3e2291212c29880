"""PostgreSQL capture adapter: pgoutput wire layer (lsn, pgoutput, replication), slot and
publication management, snapshot, and the source (import ``.source`` for ``PostgresSource``)."""

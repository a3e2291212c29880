"""MySQL / MariaDB capture adapter: binlog wire layer, snapshot, source (kind ``mysql``)."""

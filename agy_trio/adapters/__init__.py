"""Everything that touches asyncio or an SDK: host threads and backends."""

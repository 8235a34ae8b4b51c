"""The archive database: engines, sessions, models and schema management."""

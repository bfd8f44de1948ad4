"""fsctl: a multi-tenant hosted PBX on FreeSWITCH (library and CLI)."""

__version__ = "0.1.0"

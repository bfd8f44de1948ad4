"""The OpenAPI 3.1 document of /api/v1 (served at /api/v1/openapi.json)."""

from ..services import recordings, stats

_TEXT = {"type": "string"}


def _param(name, description, schema=None, where="query", required=False):
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema or _TEXT}


SEARCH_PARAMS = [
    _param("from", "started at or after (UTC; YYYY-MM-DD or ISO time)"),
    _param("to", "started before (a date includes that whole day)"),
    _param("min_length", "at least this many seconds", {"type": "number", "minimum": 0}),
    _param("max_length", "at most this many seconds", {"type": "number", "minimum": 0}),
    _param("user", "the recorded user's number"),
    _param("user_name", "the recorded user's name contains this (any case, any script)"),
    _param("counterpart", "the other party's number starts with this"),
    _param("colour", "colour mark", {"type": "string", "enum": list(recordings.COLOURS)}),
    _param("note", "the note contains this"),
    _param("field1", "free field 1 contains this"),
    _param("field2", "free field 2 contains this"),
    _param("field3", "free field 3 contains this"),
    _param("limit", "rows per page (default 50)", {"type": "integer", "minimum": 1, "maximum": 500}),
    _param("offset", "rows to skip", {"type": "integer", "minimum": 0}),
]
PERIOD = [
    _param("from", "first day (YYYY-MM-DD, tenant time zone; default 30 days back)"),
    _param("to", "last day, inclusive (default today)"),
]
RID = _param("rid", "recording id", {"type": "integer"}, where="path", required=True)
ERRORS = {str(code): {"$ref": f"#/components/responses/E{code}"} for code in (400, 401, 403, 404, 422, 429)}


def _ok(schema, description="OK"):
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}, **ERRORS}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def document(base_url=""):
    """The document (a dict)."""
    text128 = {"type": "string", "maxLength": recordings.FIELD_MAX}
    recording = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "tenant": _TEXT,
            "user": _TEXT,
            "user_name": _TEXT,
            "direction": {"type": "string", "enum": list(recordings.DIRECTIONS)},
            "counterpart": _TEXT,
            "started_at": {"type": "string", "format": "date-time"},
            "duration": {"type": "number"},
            "size": {"type": "integer"},
            "sha256": _TEXT,
            "path": _TEXT,
            "note": _TEXT,
            "colour": {"type": "string", "enum": ["", *recordings.COLOURS]},
            "field1": _TEXT,
            "field2": _TEXT,
            "field3": _TEXT,
            "mark_version": {
                "type": "string",
                "description": "the mark's version (also the ETag): give it back as If-Match when marking",
            },
            "audio_url": _TEXT,
        },
    }
    error = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "field": {"type": ["string", "null"]},
                    "value": {"type": ["string", "null"]},
                    "rule": _TEXT,
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fsctl recording API",
            "version": "1",
            "description": "Recordings (search, get, mark, download), calls and statistics of one tenant. "
            "Authenticate with a tenant token: Authorization: Bearer fsctl_... "
            "(fsctl token add DOMAIN NAME --scope read|mark).",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"token": []}],
        "paths": {
            "/api/v1/recordings": {
                "get": {
                    "summary": "Search recordings, newest first",
                    "parameters": SEARCH_PARAMS,
                    "responses": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "recordings": {"type": "array", "items": _ref("Recording")},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                            },
                        }
                    ),
                }
            },
            "/api/v1/recordings/{rid}": {
                "get": {"summary": "One recording", "parameters": [RID], "responses": _ok(_ref("Recording"))}
            },
            "/api/v1/recordings/{rid}/mark": {
                "post": {
                    "summary": "Mark a recording (scope mark); absent keys stay as they are; every change is audited. "
                    "With If-Match (or version) the mark is saved only if it is still that version: "
                    "409 with the current recording otherwise",
                    "parameters": [
                        RID,
                        _param("If-Match", 'the mark_version read with the recording, as "v"', where="header"),
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "note": {"type": "string", "maxLength": recordings.NOTE_MAX},
                                        "colour": {"type": "string", "enum": ["", "none", *recordings.COLOURS]},
                                        "field1": text128,
                                        "field2": text128,
                                        "field3": text128,
                                        "version": {"type": "string", "description": "as If-Match"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        **_ok(_ref("Recording")),
                        "409": {
                            "description": "the mark changed since that version: nothing saved",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "error": error["properties"]["error"],
                                            "current": _ref("Recording"),
                                        },
                                    }
                                }
                            },
                        },
                    },
                }
            },
            "/api/v1/recordings/{rid}/audio": {
                "get": {
                    "summary": "The recording's WAV file (HTTP Range supported; bytes match sha256)",
                    "parameters": [RID, _param("Range", "bytes=START-END", where="header")],
                    "responses": {
                        "200": {"description": "the file", "content": {"audio/wav": {}}},
                        "206": {"description": "the requested range", "content": {"audio/wav": {}}},
                        **ERRORS,
                    },
                }
            },
            "/api/v1/audit": {
                "get": {
                    "summary": "The audit of marks, newest first (tokens and admins)",
                    "parameters": [
                        _param("recording", "only this recording id", {"type": "integer"}),
                        _param("limit", "rows (default 100)", {"type": "integer"}),
                        _param("offset", "rows to skip", {"type": "integer"}),
                    ],
                    "responses": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "audit": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "id": {"type": "integer"},
                                            "tenant": _TEXT,
                                            "recording_id": {"type": "integer"},
                                            "actor": _TEXT,
                                            "via": {"type": "string", "enum": list(recordings.VIAS)},
                                            "at": {"type": "string", "format": "date-time"},
                                            "changes": {"type": "object", "description": "column: [old, new]"},
                                        },
                                    },
                                }
                            },
                        }
                    ),
                }
            },
            "/api/v1/calls": {
                "get": {
                    "summary": "The call log, newest first (read-only)",
                    "parameters": [
                        *PERIOD,
                        _param("user", "only calls this user took part in"),
                        _param("status", "answered, missed, abandoned, busy, failed, refused"),
                        _param(
                            "missed_first", "true: missed calls first", {"type": "string", "enum": ["true", "false"]}
                        ),
                        _param("limit", "rows (default 50)", {"type": "integer"}),
                        _param("offset", "rows to skip", {"type": "integer"}),
                    ],
                    "responses": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "calls": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {c: {} for c in (*stats.CALL_COLUMNS, "missed")},
                                    },
                                },
                                "from": _TEXT,
                                "to": _TEXT,
                            },
                        }
                    ),
                }
            },
            "/api/v1/stats/{report}": {
                "get": {
                    "summary": "A statistics report (read-only): the columns of `fsctl stats REPORT --format json`",
                    "parameters": [
                        _param(
                            "report",
                            "the report",
                            {"type": "string", "enum": list(stats.REPORTS)},
                            where="path",
                            required=True,
                        ),
                        *PERIOD,
                    ],
                    "responses": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "report": _TEXT,
                                "from": _TEXT,
                                "to": _TEXT,
                                "rows": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    ),
                }
            },
        },
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Recording": recording, "Error": error},
            "responses": {
                f"E{code}": {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
                for code, text in (
                    (400, "unreadable request"),
                    (401, "no valid token"),
                    (403, "not allowed (scope, role)"),
                    (404, "no such recording (or not yours)"),
                    (422, "a value breaks a rule"),
                    (429, "rate limit: see Retry-After"),
                )
            },
        },
    }

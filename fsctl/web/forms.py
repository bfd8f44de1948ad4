"""Form helpers: one message per field, nothing half-saved."""

from ..db import database
from ..errors import ConflictError, NotFoundError, ValidationError


def field_errors(checks):
    """Run each (form field, fn) and collect {form field: message}; returns (values, errors).

    Every check runs (one message per field, not only the first); values maps the fields that
    passed to what their fn returned.
    """
    values, errors = {}, {}
    for name, fn in checks:
        try:
            values[name] = fn()
        except (ValidationError, NotFoundError, ConflictError) as exc:
            errors[name] = message(exc)
    return values, errors


def message(exc):
    """The one-line message of a domain error."""
    if isinstance(exc, ValidationError):
        return f'"{exc.value}": {exc.rule}' if exc.value not in (None, "") else exc.rule
    return str(exc)


def save_fields(steps):
    """Run each (form field, fn) in its own savepoint inside one transaction; collect the errors.

    When any step fails, every step is rolled back (nothing half-saved) and {field: message}
    is returned; {} when all were saved.
    """
    errors = {}
    with database.atomic() as txn:
        for name, fn in steps:
            try:
                with database.atomic():
                    fn()
            except (ValidationError, NotFoundError, ConflictError) as exc:
                errors[name] = message(exc)
        if errors:
            txn.rollback()
    return errors


# The recording search's parameters (pages and API) -> recordings.make_filters' arguments.
FILTER_PARAMS = {
    "from": "since",
    "to": "until",
    "min_length": "min_length",
    "max_length": "max_length",
    "user": "user",
    "user_name": "user_name",
    "counterpart": "counterpart",
    "colour": "colour",
    "note": "note",
    "field1": "field1",
    "field2": "field2",
    "field3": "field3",
}


def search_filters(params):
    """(Filters, {param: message}, the given values) from query parameters, each checked on its own."""
    from ..services import recordings

    given = {name: str(params.get(name)).strip() for name in FILTER_PARAMS if str(params.get(name) or "").strip()}
    checks = [(name, (lambda n=name: recordings.make_filters(**{FILTER_PARAMS[n]: given[n]}))) for name in given]
    _values, errors = field_errors(checks)
    if errors:
        return None, errors, given
    return recordings.make_filters(**{FILTER_PARAMS[n]: v for n, v in given.items()}), {}, given

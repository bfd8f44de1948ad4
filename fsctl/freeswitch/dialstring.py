"""FreeSWITCH dial strings, the one builder (mod_dptools `bridge`): used by the call logic's plans
and by the rendered dialplan and callcenter agents.

A leg is `[name=value,...]target`: per-leg variables in `[]`, a value holding `,` single-quoted.
Legs are joined by `|` (one after another) or `,` (all at once). Targets: a registered user
`user/101@acme.example`, a gateway `sofia/gateway/<gateway>/<number>`.
"""

from . import chanvars as cv

# How legs are joined, by ring mode.
SEPARATORS = {"sequential": "|", "simultaneous": ","}


def user_target(number: str, domain: str) -> str:
    """The dial target of a registered user of a domain: `user/101@acme.example`."""
    return f"user/{number}@{domain}"


def gateway_target(gateway: str, number: str) -> str:
    """The dial target of an outside number through a gateway: `sofia/gateway/gw/+370...`."""
    return f"sofia/gateway/{gateway}/{number}"


def leg_value(value: str) -> str:
    """A per-leg variable's value as written in `[]`: single-quoted when it holds the separator `,`."""
    return f"'{value}'" if "," in value else value


def leg(target: str, timeout: int, variables=()) -> str:
    """One leg: `[leg_timeout=20,name=value]target` (its ring time first, then `variables`' pairs)."""
    pairs = [(cv.LEG_TIMEOUT, str(int(timeout))), *variables]
    inner = ",".join(f"{name}={leg_value(value)}" for name, value in pairs)
    return f"[{inner}]{target}"


def gateway_leg(
    gateway: str, number: str, domain: str, caller_name: str | None = None, timeout: int | None = None
) -> str:
    """An outside number through the tenant's gateway, as one leg carrying the tenant's transfer
    context (a REFER or *1 from the user moves the carrier's leg, resolved in its own context:
    FACTS.md) and the caller name the carrier sees (issue 11: never a user's internal name)."""
    pairs = [(cv.LEG_TIMEOUT, str(int(timeout)))] if timeout else []
    pairs.append((cv.FORCE_TRANSFER_CONTEXT, domain))
    if caller_name:
        pairs.append((cv.ORIGINATION_CALLER_ID_NAME, caller_name))
    inner = ",".join(f"{name}={leg_value(value)}" for name, value in pairs)
    return f"[{inner}]{gateway_target(gateway, number)}"


def join(legs, mode: str = "sequential") -> str:
    """Legs rung one after another (`sequential`, `|`) or all at once (`simultaneous`, `,`)."""
    return SEPARATORS[mode].join(legs)


def bridge_apps(dial_string: str) -> list[tuple[str, str]]:
    """The (application, data) steps of a bridge that falls through on failure and ends the call when
    it connected: `continue_on_fail`, `hangup_after_bridge`, then `bridge`."""
    return [
        ("set", f"{cv.CONTINUE_ON_FAIL}=true"),
        ("set", f"{cv.HANGUP_AFTER_BRIDGE}=true"),
        ("bridge", dial_string),
    ]

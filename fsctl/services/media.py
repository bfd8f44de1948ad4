"""The media centre: tenants' own greetings and announcements, validated and converted. R-ANN.

Accepted: WAV files with PCM samples (8, 16, 24 or 32 bit; mono or stereo; 8 to 48 kHz),
at most 10 minutes. Stored as 16-bit mono PCM WAV at the source rate (FreeSWITCH resamples),
written atomically under `<media_dir>/<tenant domain>/<name>.wav`.
"""

import array
import hashlib
import io
import os
import sys
import wave
from pathlib import Path

from .. import validate
from ..errors import ConflictError, OperationError, ValidationError
from ..files import write_atomic
from ..model import Ivr, Media, Queue
from .common import get_tenant, touch
from .numbered import getter, lister

MAX_SECONDS = 600
RATES = range(8000, 48001)

get_media = getter("media", model=Media, key="name")
list_media = lister("media", model=Media, key="name")


def convert_wav(data, field="media.file"):
    """Validate WAV bytes and return them as 16-bit mono PCM WAV, plus the duration in ms."""
    try:
        with wave.open(io.BytesIO(data), "rb") as src:
            channels, width, rate, frames = src.getnchannels(), src.getsampwidth(), src.getframerate(), src.getnframes()
            raw = src.readframes(frames)
    except (wave.Error, EOFError):
        raise ValidationError(
            field, "<audio>", "must be a PCM WAV file (convert MP3/OGG with sox or ffmpeg first)"
        ) from None
    if channels not in (1, 2):
        raise ValidationError(field, f"{channels} channels", "must be mono or stereo")
    if width not in (1, 2, 3, 4):
        raise ValidationError(field, f"{8 * width} bit", "must be 8, 16, 24 or 32 bit PCM")
    if rate not in RATES:
        raise ValidationError(field, f"{rate} Hz", "sample rate must be between 8000 and 48000 Hz")
    if frames == 0:
        raise ValidationError(field, "0 frames", "must not be empty")
    seconds = frames / rate
    if seconds > MAX_SECONDS:
        raise ValidationError(field, f"{seconds:.0f} s", f"must be at most {MAX_SECONDS} seconds")
    samples = _to_int16(raw, width)
    if channels == 2:
        samples = array.array("h", ((samples[i] + samples[i + 1]) // 2 for i in range(0, len(samples) - 1, 2)))
    out = io.BytesIO()
    with wave.open(out, "wb") as dst:
        dst.setnchannels(1)
        dst.setsampwidth(2)
        dst.setframerate(rate)
        if sys.byteorder == "big":
            samples.byteswap()
        dst.writeframes(samples.tobytes())
    return out.getvalue(), int(seconds * 1000)


def _to_int16(raw, width):
    """PCM little-endian samples of any width -> signed 16-bit array."""
    if width == 2:
        samples = array.array("h")
        samples.frombytes(raw[: len(raw) // 2 * 2])
        if sys.byteorder == "big":
            samples.byteswap()
        return samples
    if width == 1:  # unsigned 8-bit
        return array.array("h", ((b - 128) << 8 for b in raw))
    step = width
    return array.array(
        "h",
        (
            int.from_bytes(raw[i + step - 2 : i + step], "little", signed=True)
            for i in range(0, len(raw) - step + 1, step)
        ),
    )


def add_media(domain, name, data, media_dir, replace=False):
    """Store an uploaded audio file for the tenant under `name`."""
    tenant = get_tenant(domain)
    name = validate.slug(name, "media.name")
    existing = Media.get_or_none((Media.tenant == tenant) & (Media.name == name))
    if existing is not None and not replace:
        raise ConflictError(f'media.name "{name}": already exists in {tenant.domain} (use --replace)')
    wav, duration_ms = convert_wav(data)
    folder = Path(media_dir) / tenant.domain
    path = folder / f"{name}.wav"
    _write_atomic(path, wav)
    digest = hashlib.sha256(wav).hexdigest()
    if existing is None:
        media = Media.create(
            tenant=tenant, name=name, path=str(path), duration_ms=duration_ms, size=len(wav), sha256=digest
        )
    else:
        existing.path, existing.duration_ms, existing.size, existing.sha256 = str(path), duration_ms, len(wav), digest
        existing.save()
        media = existing
    touch(tenant)
    return media


def has_media(domain, name):
    """Whether the tenant has media of that name."""
    tenant = get_tenant(domain)
    return Media.select().where((Media.tenant == tenant) & (Media.name == name)).exists()


def remove_media(domain, name):
    """Remove a media file; refused while a menu or queue plays it."""
    media = get_media(domain, name)
    tenant = media.tenant
    users = [
        f"ivr {i.number}"
        for i in Ivr.select().where((Ivr.tenant == tenant) & ((Ivr.greeting == name) | (Ivr.invalid_sound == name)))
    ]
    users += [
        f"queue {q.number}"
        for q in Queue.select().where((Queue.tenant == tenant) & ((Queue.moh == name) | (Queue.announce == name)))
    ]
    if users:
        raise ConflictError(f"media {name} is still played by {', '.join(users)}: change those first")
    media.delete_instance()
    touch(tenant)
    return media


def delete_media_file(media):
    """Remove the stored file (after the transaction that removed the row committed)."""
    try:
        os.unlink(media.path)
    except FileNotFoundError:
        pass


def media_dict(media):
    """The stable JSON shape of a media entry."""
    return {
        "name": media.name,
        "path": media.path,
        "duration_ms": media.duration_ms,
        "size": media.size,
        "sha256": media.sha256,
    }


def _write_atomic(path, data):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, mode=0o644)
    except OSError as exc:
        raise OperationError(f'media file "{path}": {exc.strerror}') from None

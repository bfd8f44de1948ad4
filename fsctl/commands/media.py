"""fsctl media ..."""

import click

from ..db import transaction
from ..services import media as svc
from ._base import App, pass_app, read_stdin_or_file, reading, transactional
from ._output import emit, json_option, say


@click.group("media")
def cli():
    """The media centre: the tenant's own greetings and announcements (WAV)."""


@cli.command("add")
@click.argument("domain")
@click.argument("name")
@click.argument("wavfile", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--replace", is_flag=True, help="Replace an existing file of that name.")
@transactional
@click.pass_context
def add(ctx, domain, name, wavfile, replace):
    """Upload a greeting: fsctl media add acme.example welcome welcome.wav (checked, made 16-bit mono)."""
    app = ctx.find_object(App)
    replacing = replace and svc.has_media(domain, name)
    media = svc.add_media(domain, name, read_stdin_or_file(wavfile, "media.file"), app.settings.media_dir, replace)
    say(f"media {media.name} {'replaced' if replacing else 'added'} ({media.duration_ms / 1000:.1f} s)")


@cli.command("list")
@click.argument("domain")
@json_option
@reading
def list_(domain, as_json):
    """List media."""
    emit([svc.media_dict(m) for m in svc.list_media(domain)], as_json, ["name", "duration_ms", "size", "path"])


@cli.command("show")
@click.argument("domain")
@click.argument("name")
@json_option
@reading
def show(domain, name, as_json):
    """Show one media file (to change it: media add --replace)."""
    emit(svc.media_dict(svc.get_media(domain, name)), as_json)


@cli.command("remove")
@click.argument("domain")
@click.argument("name")
@pass_app
def remove(app, domain, name):
    """Remove a media file (refused while a menu or queue plays it)."""
    app.open()
    with transaction(write=True):
        media = svc.remove_media(domain, name)
    # The file goes only once the row's removal is committed.
    svc.delete_media_file(media)
    say(f"media {name} removed")

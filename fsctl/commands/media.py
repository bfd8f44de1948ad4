"""fsctl media ..."""

import click

from ..db import transaction
from ..services import media as svc
from ._base import App, pass_app, read_stdin_or_file, transactional
from ._numbered import numbered_commands
from ._output import say


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


numbered_commands(
    cli,
    "media",
    key="name",
    get=svc.get_media,
    list_rows=svc.list_media,
    as_dict=svc.media_dict,
    columns=["name", "duration_ms", "size", "path"],
    helps={"list": "List media.", "show": "Show one media file (to change it: media add --replace)."},
)


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

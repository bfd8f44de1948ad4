"""fsctl-web: the customers' own web workspace ("My pages") and the recording API.

Server-rendered pages (Jinja2) and a JSON API under /api/v1 on Starlette, served by uvicorn
on 127.0.0.1 behind the operator's TLS reverse proxy. Every rule (access rights, mark
validation, forwarding refusals, statistics) lives in the services layer the CLI uses: this
package only reads requests, calls those functions and renders their results. It never
imports click nor the fs_scripts daemon.
"""

"""SQL statements per request: `benchcount USERNAME PATH...` prints {path: statements} as JSON,
counting each path's second request (the first warms per-process caches)."""

import json

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("paths", nargs="+")

    def handle(self, *args, **options):
        client = Client()
        client.force_login(User.objects.get(username=options["username"]))
        out = {}
        for path in options["paths"]:
            client.get(path)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code}")
            out[path] = len(queries)
        self.stdout.write(json.dumps(out))

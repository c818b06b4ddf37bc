"""Placement reports as outputs: the JSON document and its text (render.py), the HTML page
(html.py). Pure: they format what analysis/ computed; the HTTP routes live in service/, the
commands in commands/report.py."""

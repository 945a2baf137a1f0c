"""The browser client: plain HTML, CSS and JavaScript, served by server/web.py as they are."""

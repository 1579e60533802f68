"""The browser console: static pages served at /ui/ that read the JSON API with the tab's token."""

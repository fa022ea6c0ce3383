"""`lihq ui`: the web page for renders (lihq/ui/app.py; the page itself is static/)."""

"""`lihq ui`: the web page for renders (lihq_cli/ui/app.py; the page itself is static/)."""

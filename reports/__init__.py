"""What people read: HTML and Markdown reports, tables, the service graph picture."""

"""CSS and JavaScript inlined into report.html (package data)."""

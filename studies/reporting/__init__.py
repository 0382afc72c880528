"""Reading and reporting: the reading status, claims, worklists, reports (drafts, signing,
amendments), templates, the printed report and full-text search over report text."""

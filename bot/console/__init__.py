"""The union's web console under `/console/` of `qiuxue serve`: accounts, the helpdesk inbox, admin pages.

A staff side like `bot/channels/telegram_staff.py`: it acts through the core services
(`bot.helpdesk.service`, `bot.accounts`, `bot.kb_admin`), never through `ingest` or a channel.
"""

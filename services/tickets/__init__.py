"""Tickets: follow-up work from chats, missed chats and the offline form."""

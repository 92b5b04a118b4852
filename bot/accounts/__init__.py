"""Accounts of the people who help: password hashing (`passwords`), users (`users`), and logins,
sessions and the login limiter (`sessions`).

Level 4 of the layers (see tests/test_layers.py): below the channels and the web layer, which
puts these behind cookies and forms (bot.web.auth); nothing here imports HTTP code.
"""

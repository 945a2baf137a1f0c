"""What greenchat keeps across restarts: accounts and registered channels.

``base`` is the interface (records, errors and the :class:`AccountStore`
protocol), ``credentials`` makes and checks what is stored for a password,
``sqlite`` is the embedded implementation (the default; a later one runs on
Redis). No SQL lives outside ``sqlite``; every implementation passes
tests/contract.
"""

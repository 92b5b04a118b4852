"""Channels: each adapter turns a provider's request into one InboundMessage, and each sender
delivers OutboundMessages on its provider. Nothing past an adapter sees a provider object."""

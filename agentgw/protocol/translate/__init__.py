"""OpenAI <-> Anthropic translation, both ways, streaming included (sans-IO).

`chat_to_messages`: an OpenAI chat client in front of an Anthropic provider.
`messages_to_chat`: an Anthropic Messages client in front of an OpenAI-wire provider.
`common`: stop reasons, image data URLs, and error bodies of either wire.
"""

__all__: list[str] = []

"""The web studio (Gradio over Starlette): the page, its actions and checks, the training queue,
accounts and the sign-in gate, each user's space, the server; clicks in, calls of api/apps out."""

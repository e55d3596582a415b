"""The faces: one wire protocol each. A face parses, validates and authenticates a request,
hands the engine a TurnRequest and renders engine events to bytes; no business rule lives here."""

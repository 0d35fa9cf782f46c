"""LLM agents (or the offline `gp` backend) that propose, review and implement designs.

    from genesys_dsl.agents.flow import run_round      # one design round
    from genesys_dsl.agents.backend import AgentBackend, AgentRequest, AgentReply

Modules: backend (the contract backends implement), flow (the round), replies
(proposal and review schemas, reading untrusted replies), implement (one unit
attempt: parse, splice, check, verify), prompts (the versioned templates in
templates/), transcript, config (TOML settings), gbnf / gbnf_read (the GBNF grammar
generated from grammar/gab.lark, and a reader that tests it), commands (`genesys
propose`, `genesys prompts`). Backends are plugins (`register_agents`); this
package stays light to import, since the plugin machinery imports `backend`.
"""

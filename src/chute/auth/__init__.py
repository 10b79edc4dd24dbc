"""Who is calling, and what they may do: one auth layer for chute-api and chute-compute.

`options` declares `[DEFAULT] auth_strategy` (noauth | tokens | keystone), `tokens_file`,
`[oslo_policy]` and `[keystone_authtoken]` for both services; `context` is the typed
`RequestContext` every service layer receives; `tokens` reads the tokens file; `middleware`
strips identity headers sent by clients and builds the context once per request;
`token_cache` keeps the tokens keystonemiddleware confirmed; `policy`
holds the default rules (Glance's and Nova's secure-RBAC defaults) and enforces them.
"""

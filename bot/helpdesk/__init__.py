"""The union helpdesk: tickets, hand-off rules, relaying between workers and agents, drafts."""

"""求学圆梦助手: dialogue core, answering, eligibility, guides, helpdesk and channels."""

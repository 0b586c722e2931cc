"""Everything that speaks Tencent's room_config admin API: signing, hosts, command words, the client."""

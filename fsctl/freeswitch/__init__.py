"""FreeSWITCH's vocabulary and wire: the Event Socket client and protocol, XML checks, mod_callcenter."""

"""HTTP routes: thin translations between HTTP and `kit.gateway.service.Gateway`."""

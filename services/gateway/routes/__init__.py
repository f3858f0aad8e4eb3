"""HTTP routes: thin translations between HTTP and `services.gateway.service.Gateway`."""

/* auth.c - access checks applied by the route table. */
#include "auth.h"

int
auth_check(struct req *r, enum route_access access, int page)
{
	(void)page;
	if (access == ACC_ANY || access == ACC_ADMIN)
		return 0;
	req_error(r, 401, "authentication required");
	return -1;
}

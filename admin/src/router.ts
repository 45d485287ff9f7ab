import type { Pinia } from 'pinia';
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router';
import { useSessionStore } from './stores/session.js';

const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('./views/LoginView.vue'), meta: { guest: true, title: 'Sign in' } },
  { path: '/not-admin', name: 'not-admin', component: () => import('./views/NotAdminView.vue'), meta: { title: 'Not an admin' } },
  {
    path: '/',
    component: () => import('./components/AdminShell.vue'),
    meta: { admin: true },
    children: [
      { path: '', name: 'dashboard', component: () => import('./views/DashboardView.vue'), meta: { title: 'Dashboard' } },
      { path: 'users', name: 'users', component: () => import('./views/UsersView.vue'), meta: { title: 'Users' } },
      { path: 'users/:userId', name: 'user', component: () => import('./views/UserView.vue'), props: true, meta: { title: 'User' } },
      { path: 'tokens', name: 'tokens', component: () => import('./views/TokensView.vue'), meta: { title: 'Registration tokens' } },
      { path: 'rooms', name: 'rooms', component: () => import('./views/RoomsView.vue'), meta: { title: 'Rooms' } },
      { path: 'rooms/:roomId', name: 'room', component: () => import('./views/RoomView.vue'), props: true, meta: { title: 'Room' } },
      { path: 'reports', name: 'reports', component: () => import('./views/ReportsView.vue'), meta: { title: 'Reports' } },
      { path: 'media', name: 'media', component: () => import('./views/MediaView.vue'), meta: { title: 'Media' } },
      { path: 'federation', name: 'federation', component: () => import('./views/FederationView.vue'), meta: { title: 'Federation' } },
      { path: 'bootstrap', name: 'bootstrap', component: () => import('./views/BootstrapView.vue'), meta: { title: 'Bootstrap list' } },
      { path: 'mailbox', name: 'mailbox', component: () => import('./views/MailboxView.vue'), meta: { title: 'Mailbox' } },
      { path: 'relay', name: 'relay', component: () => import('./views/RelayView.vue'), meta: { title: 'Relay' } },
      { path: 'updates', name: 'updates', component: () => import('./views/UpdatesView.vue'), meta: { title: 'Updates' } },
      { path: 'settings', name: 'settings', component: () => import('./views/SettingsView.vue'), meta: { title: 'Settings' } },
      { path: 'audit', name: 'audit', component: () => import('./views/AuditView.vue'), meta: { title: 'Audit log' } },
    ],
  },
  { path: '/:rest(.*)*', redirect: '/' },
];

/** Signed out → sign-in page; signed in without the admin flag → the "not an admin" page. */
export function createAdminRouter(pinia: Pinia) {
  const router = createRouter({ history: createWebHistory('/admin/'), routes });
  router.beforeEach(async (to) => {
    const session = useSessionStore(pinia);
    if (!session.signedIn) return to.meta.guest ? true : { name: 'login', query: to.fullPath === '/' ? {} : { next: to.fullPath } };
    if (to.meta.guest) return { name: 'dashboard' };
    if (session.isAdmin === null) await session.checkAdmin();
    if (!session.signedIn) return { name: 'login' };
    if (to.meta.admin && session.isAdmin === false) return { name: 'not-admin' };
    if (to.name === 'not-admin' && session.isAdmin) return { name: 'dashboard' };
    return true;
  });
  router.afterEach((to) => {
    document.title = `${(to.meta.title as string | undefined) ?? 'Admin'} · Parley admin`;
  });
  return router;
}

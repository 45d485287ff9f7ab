import type { Pinia } from 'pinia';
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router';
import { useSessionStore } from './stores/session.js';

// Client routes live beside the server's own paths (/api, /health, /metrics, /federation,
// /admin), which the server never hands to the SPA fallback; none of these may start so.
const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('./views/AuthView.vue'), props: { mode: 'login' }, meta: { guest: true } },
  {
    path: '/register',
    name: 'register',
    component: () => import('./views/AuthView.vue'),
    props: { mode: 'register' },
    meta: { guest: true },
  },
  {
    path: '/',
    component: () => import('./views/ChatLayout.vue'),
    children: [
      { path: '', name: 'home', component: () => import('./views/HomeView.vue') },
      {
        path: 'room/:roomId/settings',
        name: 'room-settings',
        component: () => import('./views/RoomSettingsView.vue'),
        props: true,
      },
      { path: 'room/:roomId', name: 'room', component: () => import('./views/RoomView.vue'), props: true },
      { path: 'create', name: 'create', component: () => import('./views/CreateRoomView.vue') },
      { path: 'dm', name: 'dm', component: () => import('./views/StartDirectView.vue') },
      { path: 'join', name: 'join', component: () => import('./views/JoinRoomView.vue') },
      { path: 'directory', name: 'directory', component: () => import('./views/DirectoryView.vue') },
      { path: 'settings', name: 'settings', component: () => import('./views/SettingsView.vue') },
      { path: 'contacts', name: 'contacts', component: () => import('./views/ContactLinksView.vue') },
      // Someone's contact link: the payload is in the fragment (/contact#…), never sent to a server.
      { path: 'contact', name: 'contact', component: () => import('./views/ContactRequestView.vue') },
    ],
  },
  { path: '/:rest(.*)*', redirect: '/' },
];

export function createAppRouter(pinia: Pinia) {
  const router = createRouter({ history: createWebHistory(), routes });
  router.beforeEach((to) => {
    const session = useSessionStore(pinia);
    if (to.meta.guest) return session.signedIn ? { name: 'home' } : true;
    if (!session.signedIn) return { name: 'login', query: to.fullPath === '/' ? {} : { next: to.fullPath } };
    return true;
  });
  return router;
}
